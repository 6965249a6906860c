"""descend.schedules"""
