"""Tests of descend.tour (the tour) and its command."""
