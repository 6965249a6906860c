"""Tests of descend.report (the tour) and its command."""
