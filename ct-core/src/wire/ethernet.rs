//! STUB
use super::Frame;
use crate::invalid::InvalidReason;
pub(super) fn parse(_frame: &[u8]) -> Result<Frame<'_>, InvalidReason> {
    todo!()
}
