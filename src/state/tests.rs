//! Unit tests of the shared token state and its flights, through a fake `Fetch`.
