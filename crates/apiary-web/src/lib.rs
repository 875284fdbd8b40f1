//! apiary-web
