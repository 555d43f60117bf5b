//! STUB: TFTP helper
