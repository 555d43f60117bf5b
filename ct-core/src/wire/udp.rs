//! STUB
use crate::invalid::InvalidReason;
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct UdpDgram<'a> {
    pub sport: u16,
    pub dport: u16,
    pub length: u16,
    pub checksum: u16,
    pub payload: &'a [u8],
}
impl<'a> UdpDgram<'a> {
    pub fn parse(_l4: &'a [u8]) -> Result<UdpDgram<'a>, InvalidReason> {
        todo!()
    }
    pub fn parse_quoted(_l4: &'a [u8]) -> Result<UdpDgram<'a>, InvalidReason> {
        todo!()
    }
}
