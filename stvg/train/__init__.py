"""stvg.train"""
