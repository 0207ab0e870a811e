/// This build's version, shown by `xn --version` and announced by workers in their hello.
public let xnVersion = "0.2.0"
