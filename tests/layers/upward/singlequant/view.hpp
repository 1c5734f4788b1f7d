// fixture: a public header
#include "config.hpp"
