"""DSE and DSMI(Z; Y) of a network's penultimate representation in a plain PyTorch loop.

Run: python examples/plain_loop.py
"""

import torch
from torch import nn

from dse_callback import DSETracker

torch.manual_seed(0)
labels = torch.arange(600) % 3
points = torch.randn(3, 16)[labels] * 3 + torch.randn(600, 16)  # three blobs in 16 dimensions
x_train, y_train, x_val, y_val = points[:400], labels[:400], points[400:], labels[400:]
model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 3))
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)

# The input of the last nn.Linear (the penultimate representation), on a fixed probe set.
tracker = DSETracker(probe=(x_val, y_val), metrics=("dse", "dsmi_y"))
for epoch in range(4):
    if epoch > 0:  # epoch 0 is the baseline, before any training
        for batch in torch.randperm(len(x_train)).split(32):
            loss = nn.functional.cross_entropy(model(x_train[batch]), y_train[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    values = tracker.measure(model, epoch)  # the probe runs in eval mode; training is unchanged
    print(f"epoch {epoch}: DSE(Z) {values['dse/Z']:.3f} bits, DSMI(Z; Y) {values['dsmi/Z_Y']:.3f} bits")
