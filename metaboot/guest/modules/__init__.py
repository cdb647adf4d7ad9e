"""Config modules: one file per capability, each exporting ``MODULE`` (see ``base``)."""
