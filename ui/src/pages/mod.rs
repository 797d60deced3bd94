//! One module per page.

pub mod app_page;
pub mod catalog;
pub mod dashboard;
pub mod onboard;
