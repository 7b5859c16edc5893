package org.opensearch.mach;

import org.opensearch.plugins.Plugin;

public class MachPlugin extends Plugin {
}
