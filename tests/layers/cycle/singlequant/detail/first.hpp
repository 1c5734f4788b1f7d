// fixture: half of an include cycle
#include "second.hpp"
