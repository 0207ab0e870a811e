print("xn-bench placeholder")
