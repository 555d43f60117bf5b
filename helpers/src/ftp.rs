//! STUB: FTP helper
