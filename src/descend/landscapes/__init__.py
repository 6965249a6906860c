"""descend.landscapes"""
