"""descend.plots"""
