"""Claim 4 of the later feature-map paper (issue 18): does local curvature predict attribution stability?"""
