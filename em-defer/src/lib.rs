//! em defer (work in progress).
