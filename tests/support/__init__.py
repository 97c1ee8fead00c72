"""Helpers shared by the test layers: free ports, real servers and notify processes."""
