"""descend.optim"""
