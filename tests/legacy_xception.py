"""An independent re-creation, for the tests, of the architecture of timm's `legacy_xception`
(Cadene's port of the Keras model): its module names and its two differences from Keras, max-pools
padded 1 on every side and PyTorch's default BN epsilon. Built from plain nn.Conv2d pairs."""

from torch import nn


class LegacySeparableConv2d(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cin, 3, 1, 1, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x):
        return self.pointwise(self.conv1(x))


class LegacyBlock(nn.Module):
    def __init__(self, cin, cout, reps, stride, start_with_relu=True, grow_first=True):
        super().__init__()
        self.skip = nn.Conv2d(cin, cout, 1, stride=stride, bias=False) if cout != cin or stride != 1 else None
        self.skipbn = nn.BatchNorm2d(cout) if self.skip is not None else None
        layers = []
        for i in range(reps):
            a = (cin if i == 0 else cout) if grow_first else cin
            b = cout if grow_first else (cin if i < reps - 1 else cout)
            layers += [nn.ReLU(inplace=False), LegacySeparableConv2d(a, b), nn.BatchNorm2d(b)]
        if not start_with_relu:
            layers = layers[1:]
        if stride != 1:
            layers.append(nn.MaxPool2d(3, stride, 1))
        self.rep = nn.Sequential(*layers)

    def forward(self, x):
        skip = x if self.skip is None else self.skipbn(self.skip(x))
        return self.rep(x) + skip


class LegacyXception(nn.Module):
    def __init__(self, num_classes=1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, 2, 0, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.conv2 = nn.Conv2d(32, 64, 3, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.block1 = LegacyBlock(64, 128, 2, 2, start_with_relu=False)
        self.block2 = LegacyBlock(128, 256, 2, 2)
        self.block3 = LegacyBlock(256, 728, 2, 2)
        for i in range(4, 12):
            setattr(self, f"block{i}", LegacyBlock(728, 728, 3, 1))
        self.block12 = LegacyBlock(728, 1024, 2, 2, grow_first=False)
        self.conv3 = LegacySeparableConv2d(1024, 1536)
        self.bn3 = nn.BatchNorm2d(1536)
        self.conv4 = LegacySeparableConv2d(1536, 2048)
        self.bn4 = nn.BatchNorm2d(2048)
        self.fc = nn.Linear(2048, num_classes)

    def forward(self, x):
        x = self.bn2(self.conv2(self.bn1(self.conv1(x)).relu())).relu()
        for i in range(1, 13):
            x = getattr(self, f"block{i}")(x)
        x = self.bn3(self.conv3(x)).relu()
        x = self.bn4(self.conv4(x)).relu()
        return self.fc(x.mean((2, 3)))
