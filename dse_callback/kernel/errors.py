"""Warning categories, so users can filter or escalate each kind on its own."""


class BandwidthWarning(UserWarning):
    """DSE sits at 0 or at log2 N: the bandwidth sigma does not fit the scale of Z."""


class EigensolverFallbackWarning(RuntimeWarning):
    """The eigensolver failed and was retried in float64 or on the CPU."""


class SkippedClassWarning(UserWarning):
    """A class of the reference variable has fewer than 2 members and adds nothing to DSMI."""
