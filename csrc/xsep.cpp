// The xsep operator library: every schema lives here; each backend registers its kernels
// with TORCH_LIBRARY_IMPL in its own folder (cpu/, cuda/), autocast in autocast.cpp.
#include <Python.h>
#include <torch/library.h>

#include "common/dispatch_log.h"
#include "kernels/kernel_knobs.h"
#include "kernels/phase_clocks.h"

// `import xsep._C` loads this shared object, which runs the static registrations below. The ops
// are reached through torch.ops.xsep.*; the module's own functions serve measurement (xsep bench):
// the kernel-choice knobs and the record of which kernels ran (xsep/_kernel_knobs.py wraps them),
// and the instrumented kernels' phase clocks (tools/phase_clocks.py reads them).
namespace {

PyObject* set_kernel_knob(PyObject*, PyObject* args) {
  const char* name = nullptr;
  const char* value = nullptr;
  if (!PyArg_ParseTuple(args, "ss", &name, &value)) return nullptr;
  xsep::KernelKnob knob;
  if (!xsep::kernel_knob_by_name(name, &knob)) {
    PyErr_Format(PyExc_ValueError, "unknown kernel knob %s", name);
    return nullptr;
  }
  xsep::KernelKnobs::instance().set(knob, value);
  Py_RETURN_NONE;
}

PyObject* kernel_knob(PyObject*, PyObject* args) {
  const char* name = nullptr;
  if (!PyArg_ParseTuple(args, "s", &name)) return nullptr;
  xsep::KernelKnob knob;
  if (!xsep::kernel_knob_by_name(name, &knob)) {
    PyErr_Format(PyExc_ValueError, "unknown kernel knob %s", name);
    return nullptr;
  }
  return PyUnicode_FromString(xsep::kernel_knob(knob).c_str());
}

PyObject* record_dispatches(PyObject*, PyObject* args) {
  int on = 0;
  if (!PyArg_ParseTuple(args, "p", &on)) return nullptr;
  xsep::record_dispatches(on != 0);
  Py_RETURN_NONE;
}

PyObject* take_dispatches(PyObject*, PyObject*) {
  const std::vector<std::string> lines = xsep::take_dispatches();
  PyObject* list = PyList_New(static_cast<Py_ssize_t>(lines.size()));
  if (list == nullptr) return nullptr;
  for (size_t i = 0; i < lines.size(); ++i) {
    PyObject* line = PyUnicode_FromString(lines[i].c_str());
    if (line == nullptr) {
      Py_DECREF(list);
      return nullptr;
    }
    PyList_SET_ITEM(list, static_cast<Py_ssize_t>(i), line);
  }
  return list;
}

// [(kernel, slots_per_cta, records)]: the launches made with XSEP_PHASE_CLOCKS=1 since the last
// take (kernels/phase_clocks.h), each with its CTAs' records in one flat list.
PyObject* take_phase_clocks(PyObject*, PyObject*) {
  const auto launches = xsep::PhaseClockLog::instance().take();
  PyObject* list = PyList_New(static_cast<Py_ssize_t>(launches.size()));
  if (list == nullptr) return nullptr;
  for (size_t l = 0; l < launches.size(); ++l) {
    const auto& [kernel, slots] = launches[l];
    PyObject* values = PyList_New(static_cast<Py_ssize_t>(slots.size()));
    if (values == nullptr) {
      Py_DECREF(list);
      return nullptr;
    }
    for (size_t i = 0; i < slots.size(); ++i) {
      PyObject* value = PyLong_FromUnsignedLongLong(slots[i]);
      if (value == nullptr) {
        Py_DECREF(values);
        Py_DECREF(list);
        return nullptr;
      }
      PyList_SET_ITEM(values, static_cast<Py_ssize_t>(i), value);
    }
    PyObject* launch = Py_BuildValue("(siN)", kernel.c_str(), xsep::kPhaseClockSlots, values);
    if (launch == nullptr) {
      Py_DECREF(list);
      return nullptr;
    }
    PyList_SET_ITEM(list, static_cast<Py_ssize_t>(l), launch);
  }
  return list;
}

PyMethodDef methods[] = {
    {"set_kernel_knob", set_kernel_knob, METH_VARARGS, "set_kernel_knob(name, value): '' means unset"},
    {"kernel_knob", kernel_knob, METH_VARARGS, "kernel_knob(name) -> the value in force ('' when unset)"},
    {"record_dispatches", record_dispatches, METH_VARARGS, "record_dispatches(on): keep the dispatch lines"},
    {"take_dispatches", take_dispatches, METH_NOARGS, "take_dispatches() -> the lines kept since the last take"},
    {"take_phase_clocks", take_phase_clocks, METH_NOARGS,
     "take_phase_clocks() -> [(kernel, slots per CTA, records)] of the XSEP_PHASE_CLOCKS=1 launches since the last"},
    {nullptr, nullptr, 0, nullptr},
};

}  // namespace

extern "C" PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, methods};
  return PyModule_Create(&module_def);
}

TORCH_LIBRARY(xsep, m) {
  // y = conv2d(act(conv2d(x, dw_weight, stride, padding, dilation, groups=C)), pw_weight, bias)
  // with act = intermediate_activation: "none" (Xception's choice, the default), "relu" or "elu".
  // padding is explicit and possibly asymmetric: (top, bottom, left, right); the Python
  // wrapper resolves "same"/"valid"/int/tuple into it.
  m.def(
      "separable_conv2d(Tensor x, Tensor dw_weight, Tensor pw_weight, Tensor? bias, "
      "int[2] stride, int[4] padding, int[2] dilation, str intermediate_activation=\"none\") -> Tensor");
  // Gradients of separable_conv2d. output_mask = (x, dw_weight, pw_weight, bias): an entry that
  // is false is not computed and comes back as an empty tensor of shape (0,).
  m.def(
      "separable_conv2d_backward(Tensor grad_out, Tensor x, Tensor dw_weight, Tensor pw_weight, "
      "int[2] stride, int[4] padding, int[2] dilation, str intermediate_activation, bool[4] output_mask) "
      "-> (Tensor, Tensor, Tensor, Tensor)");
}
