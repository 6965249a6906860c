"""Tests of descend.lab and its figures."""
