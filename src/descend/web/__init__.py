"""descend.web"""
