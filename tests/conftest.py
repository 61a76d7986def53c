import pytest
import torch

_emulation_module = pytest.StashKey[object]()


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def pytest_collection_finish(session):
    # The kernel emulation's g++ builds (tests/test_kernel_emulation.py) take minutes of CPU: start
    # them now, so they run beside the tests before that file's instead of holding up its first test.
    for item in session.items:
        module = getattr(item, "module", None)
        if hasattr(module, "start_emulation_builds"):
            module.start_emulation_builds(session.items)
            session.config.stash[_emulation_module] = module
            return


def pytest_sessionfinish(session):
    module = session.config.stash.get(_emulation_module, None)
    if module is not None:
        module.stop_emulation_builds()  # no build left running after an early stop (-x, Ctrl-C)
