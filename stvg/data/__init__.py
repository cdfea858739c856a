"""stvg.data"""
