"""The feature-map smoothing study (Bhusal, Alam & Rastogi): regimes N, A, M1, M2, G, E, NG."""
