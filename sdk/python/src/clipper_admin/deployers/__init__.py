"""Model deployers (Clipper's `clipper_admin.deployers`)."""
