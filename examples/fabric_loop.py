"""DSE and DSMI(Z; Y) in a Lightning Fabric loop: the probe runs under Fabric's precision.

Run: python examples/fabric_loop.py
"""

import torch
from lightning.fabric import Fabric
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from dse_callback import DSETracker, Runtime

fabric = Fabric(accelerator="cpu", devices=1, precision="bf16-mixed")
fabric.seed_everything(0)
labels = torch.arange(600) % 3
points = torch.randn(3, 16)[labels] * 3 + torch.randn(600, 16)  # three blobs in 16 dimensions
train = DataLoader(TensorDataset(points[:400], labels[:400]), batch_size=32, shuffle=True)
network = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 3))
model, optimizer = fabric.setup(network, torch.optim.SGD(network.parameters(), lr=0.05))
train = fabric.setup_dataloaders(train)

# The probe forwards the plain module (hooks on its layers) under Fabric's precision plugin.
precision = fabric.strategy.precision
runtime = Runtime(convert_input=precision.convert_input, forward_context=precision.forward_context)
tracker = DSETracker(probe=(points[400:], labels[400:]), metrics=("dse", "dsmi_y"))
for epoch in range(4):
    for x, y in train if epoch > 0 else ():  # epoch 0 is the baseline, before any training
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        fabric.backward(loss)
        optimizer.step()
    values = tracker.measure(model.module, epoch, runtime=runtime)
    fabric.print(f"epoch {epoch}: DSE(Z) {values['dse/Z']:.3f} bits, DSMI(Z; Y) {values['dsmi/Z_Y']:.3f} bits")
