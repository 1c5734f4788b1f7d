// fixture: the other half of the cycle
#include "first.hpp"
