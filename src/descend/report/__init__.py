"""descend.report"""
