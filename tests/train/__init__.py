"""Tests of descend.train."""
