// fulcrumctl's verbs over the admin API (PRODUCT.md §3, docs/fulcrumctl.md). [cli]
#pragma once

namespace fulcrum::ctl {

// Parses the arguments, runs one verb and returns the exit status: 0 done, 1 the API refused or
// could not be reached (or a file could not be read), 2 a usage error. Writes results to
// standard output and every error to standard error; never writes the token.
int run(int argc, char** argv);

}  // namespace fulcrum::ctl
