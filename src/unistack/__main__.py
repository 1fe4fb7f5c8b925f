from unistack.entry import main

main()
