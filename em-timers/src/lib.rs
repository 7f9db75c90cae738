//! em timers (work in progress).
