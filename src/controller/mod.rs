//! Controllers, one module per resource.
pub mod app_registration;
