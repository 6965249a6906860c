"""descend.train"""
