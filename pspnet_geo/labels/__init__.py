"""Classes and labels shared by training and evaluation: class files, label rasters and
vector labels, read window by window. Free of torch, so evaluation does not load it."""
