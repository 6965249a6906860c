"""descend.models"""
