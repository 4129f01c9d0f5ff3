"""Figures for people who compare numbers: the dashboard, the plan's progress, reports."""
