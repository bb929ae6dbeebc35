"""The dashboard's pages, one Streamlit script each (registered by dashboard/app.py with st.navigation)."""
