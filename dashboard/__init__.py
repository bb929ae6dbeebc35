"""Streamlit dashboard; reads the broker over HTTP only."""
