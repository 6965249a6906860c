"""descend.lab"""
