//! One integration-test binary (link time dominates): every suite is a module.

mod convert;
mod ddl;
mod decode;
mod inspect;
mod ion;
mod live;
mod merge;
mod records;
mod reliability;
mod sql;
mod support;
