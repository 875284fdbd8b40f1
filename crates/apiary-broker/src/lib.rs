//! apiary-broker
