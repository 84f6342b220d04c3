"""The population studies: many small models, their DSE and DSMI against their accuracy.

- `models`: the model families and their training;
- `metrics`: every measure of a model, the correlations, the table and the figure;
- `study`: `dse-experiment population --config ...`, the MNIST study;
- `imagenet`: the paper's ImageNet study (timm models), kept runnable.
"""
