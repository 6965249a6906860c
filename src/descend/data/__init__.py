"""descend.data"""
