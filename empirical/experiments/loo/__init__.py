"""The leave-one-out stability study (Ye & Farnia eq. 10): coupled replicas that differ in one training sample."""
