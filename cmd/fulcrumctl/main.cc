// fulcrumctl: the command-line client of fulcrumd's admin API.
#include "cli.h"

int main(int argc, char** argv) {
  return fulcrum::ctl::run(argc, argv);
}
