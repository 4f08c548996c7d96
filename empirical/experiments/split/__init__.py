"""The disjoint-split stability study (Ye & Farnia sec. 5.1): pairs of networks on disjoint halves, maps against
sigma, the bounds evaluated on the same networks."""
