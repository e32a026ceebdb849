//! lienthong gateway.
