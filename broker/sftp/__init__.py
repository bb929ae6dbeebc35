"""Automated deposit over SFTP: one chrooted inbox per organisation, public-key login, drops of files
plus a manifest that become publications through the same services as the API."""
