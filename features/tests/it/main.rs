//! The Gherkin acceptance features, one cucumber runner per area (`features/<area>/`), each a
//! test of this one binary so that nextest runs and schedules them like every other test.

mod cynork;
mod dev_environment;
mod orchestrator;
mod orchestrator_process;
mod teams;
mod worker_node;
